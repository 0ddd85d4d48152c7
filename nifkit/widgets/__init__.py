"""Interactive explorers (ipywidgets + matplotlib); building blocks in :mod:`.base`."""
from .base import Explorer, PlotArea, ProgressArea, Readout, bins_slider, layer_picker, neuron_picker, samples_slider

__all__ = ["Explorer", "PlotArea", "ProgressArea", "Readout", "bins_slider", "layer_picker", "neuron_picker",
           "samples_slider"]
