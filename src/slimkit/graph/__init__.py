"""The dependency graph: trace a model by running it and find the channels that must be removed together.

``build_graph(model, example_inputs)`` returns a :class:`ChannelGraph` whose ``groups`` are the prunable coupling
groups and ``skipped`` the ones left untouched, each with the reason (module and op). No pruning algorithm lives
here; extend the op rules with :func:`register_op` and module rules with :func:`register_leaf`.
"""

from slimkit.graph.fields import Occurrence
from slimkit.graph.groups import ChannelGraph, Group, build_graph
from slimkit.graph.leaves import register_untouched
from slimkit.graph.ops import register_op
from slimkit.graph.tracer import register_leaf

__all__ = ["ChannelGraph", "Group", "Occurrence", "build_graph", "register_leaf", "register_op", "register_untouched"]
