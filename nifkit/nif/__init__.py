r"""Neural information flow (NIF): a trained network as a network-science object.

After Davis, Bhatt, Bhardwaj, Marculescu & Moura, *Neural Information Flow* (arXiv
1901.08557; ICASSP 2020 as "On Network Science and Mutual Information for Explaining
Deep Neural Networks"). What the paper states and what nifkit reconstructs is listed in
``shared/papers.md`` section 1; every reconstructed choice below is an option, and its
default is labelled *reconstruction* in the docstrings.

The flow graph
--------------
Nodes are neurons: the input features, the hidden units (their post-activation values,
i.e. what the next layer reads) and the outputs (the model's output, e.g. logits),
addressed as every chapter addresses them: the one walker's units name and the index
(:class:`nifkit.models.Neuron`: ``"input:2"``, ``"act1:3"``, ``"fc_out:1"`` in an
``mlp``; :func:`flow_nodes`). Edges are the weights of the Linear/Conv layer between two
node layers (``FlowGraph.weight_layers``: ``fc1`` joins ``input`` to ``act1``). A
convolutional layer contributes one node per channel, whose activity is the channel's
map reduced by ``channel_reduce`` (``"mean"`` over positions by default). A network
with skip connections (a ResNet, :func:`nifkit.models.residual_cnn`) gives a DAG: the
output of every ``add`` (with its activation) is a node layer too, joined to each of
its inputs by *identity* edges, channel ``c`` to channel ``c`` (``weight_layer ==
"identity"``, :mod:`.dag`). Edges join *connected* neurons (a nonzero weight, or a
nonzero kernel slice for channels) and carry the mutual information between the two
neurons' activities over the data,

.. math::

    f_{ij} = I(a_i; a_j) \quad (\text{bits}), \qquad
    \text{optionally } f_{ij} = I(a_i; a_j)\,|w_{ij}| \quad (\texttt{weight\_scale=True}),

where for channels :math:`|w_{ij}|` is the mean absolute value of the kernel slice
(*reconstruction*). Estimators (``estimator=``):

``"binned"`` (default)
    per-neuron bins (:class:`nifkit.info.Binner`), plug-in MI of all pairs of two
    adjacent layers from **one** :func:`nifkit.info.pairwise_mi` call per layer pair.
``"dv"``
    the paper's Donsker–Varadhan neural estimator: the critics of **all** edges of the
    network train together as one batched network (:func:`nifkit.info.dv_mi_pairs`).
``"ksg"``
    Kraskov–Stögbauer–Grassberger (k-NN) for 1-D pairs, vectorised over blocks of edges
    (exact-distance version of :func:`nifkit.info.ksg_mi`; O(n²) memory per pair, so
    meant for small networks or ``max_samples`` of a few thousand).
``"gaussian"``
    :math:`-\tfrac12\log_2(1-\rho_{ij}^2)` from the correlation matrix of two layers:
    exact for jointly Gaussian neurons, a summary of linear dependence otherwise.

``significance=alpha`` prunes edges whose MI is not larger than the shuffle null
(one permutation of the downstream layer's samples per shuffle, shared by all edges,
so every marginal is kept): an edge stays when its p-value is below ``alpha``.

Network science
---------------
:func:`betweenness`, :func:`communities`, :func:`strongest_paths` and
:func:`attribution` (feature attributions by information flow) work on a
:class:`FlowGraph`; the same are methods of the graph. Their defaults are
reconstructions, documented where they are defined.

Package layout: :mod:`.dag` (node layers and edge groups over the walker's traced
tensors), :mod:`.stream` (activities reduced batch by batch; across processes),
:mod:`.build` (layers, edge estimates: :func:`flow_graph`),
:mod:`.graph` (:class:`FlowGraph` and the network science), :mod:`.plots`,
:mod:`.widget` (:class:`FlowExplorer`), :mod:`.exercise` (the checker).
"""
from .._lazy import lazy_widget
from .build import DV_DEFAULTS, ESTIMATORS, INPUT_LAYER, flow_graph, flow_layers, flow_nodes
from .exercise import check_flow_attribution, flow_attribution_verdict
from .scores import neuron_scores
from .graph import IDENTITY, Attribution, FlowGraph, FlowPaths, attribution, betweenness, communities, strongest_paths

_WIDGET = ("FlowExplorer", "FlowView")

__all__ = [
    "ESTIMATORS", "INPUT_LAYER", "IDENTITY", "DV_DEFAULTS", "FlowGraph", "FlowPaths", "Attribution", "flow_graph", "flow_layers",
    "flow_nodes", "betweenness", "communities", "strongest_paths", "attribution", "check_flow_attribution",
    "flow_attribution_verdict", "FlowExplorer", "FlowView", "neuron_scores",
]

__getattr__ = lazy_widget(__name__, _WIDGET)  # the widget needs ipywidgets: imported on first use
