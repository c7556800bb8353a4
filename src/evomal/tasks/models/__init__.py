"""Base models: the architectures of the paper (Section 4.2) by name, sized for small inputs.

``build_model(name, input_shape, n_outputs, seed=None, **options)`` returns a
plain ``torch.nn.Module`` producing ``[batch, n_outputs]`` logits. Every model
works with ``torch.func.functional_call`` and ``vmap`` over stacked parameters
and buffers. docs/models.md lists the models with their options and says how
to batch them (BatchNorm and dropout included).
"""

from evomal.tasks.models.zoo import MODELS, ModelSpec, build_model, get_model_spec, model_names

__all__ = ["MODELS", "ModelSpec", "build_model", "get_model_spec", "model_names"]
