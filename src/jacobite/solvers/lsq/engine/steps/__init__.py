"""Step rules of the least-squares engine: each turns the model at ``x`` into trial steps."""
