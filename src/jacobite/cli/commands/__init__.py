"""One module per subcommand; each defines HELP, add_arguments(parser) and run(args)."""

from . import extrema, inspect, integrate, jacobian, softmax, tour

REGISTRY = {
    "jacobian": jacobian,
    "softmax": softmax,
    "extrema": extrema,
    "integrate": integrate,
    "inspect": inspect,
    "tour": tour,
}
