"""jacobite's own tests for the cases PyTorch's functorch suite checks on jacrev, jacfwd,
hessian, jvp, vjp and linearize: same inputs and expected properties, with torch.func (float64)
as the oracle, over jacobite's modes and chunk sizes."""
