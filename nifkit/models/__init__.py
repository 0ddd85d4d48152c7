"""Models: builders and the zoo (:mod:`.zoo`), training with snapshots
(:mod:`.training`), the one layer walker with the neuron address (:mod:`.walk`) and
the one hook context (:mod:`.hooks`: every hook nifkit attaches).

Every name is importable from ``nifkit.models`` directly.
"""
from ..runtime import cpu_threads, set_seed  # the thread policy and seeds live in nifkit.runtime
from .hooks import Hooks, hooks
from .training import LOSSES, TrainResult, evaluate, train
from .units import CHANNEL_REDUCTIONS, check_units, hidden_layout, hidden_neurons, positions_of, reduce_channels, unit_counts
from .walk import ModelWalk, Neuron, WalkedLayer, blocks, layer_names, resolve_layers, walk
from .zoo import ACTIVATIONS, INITS, PRETRAINED, init_weights, load_pretrained, mlp, pretrained_path, small_cnn, residual_cnn, ResidualCNN, ResidualBlock

__all__ = [
    "ACTIVATIONS", "INITS", "mlp", "small_cnn", "residual_cnn", "ResidualCNN", "ResidualBlock", "layer_names", "init_weights", "set_seed", "cpu_threads",
    "train", "evaluate", "TrainResult", "LOSSES", "PRETRAINED", "load_pretrained", "pretrained_path",
    "walk", "ModelWalk", "WalkedLayer", "Neuron", "resolve_layers", "blocks", "hidden_layout", "hidden_neurons",
    "reduce_channels", "positions_of", "CHANNEL_REDUCTIONS", "unit_counts", "check_units",
    "hooks", "Hooks",
]
