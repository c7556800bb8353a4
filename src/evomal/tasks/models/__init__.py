"""Base models: the architectures of the paper (Section 4.2) by name, sized for small inputs.

``build_model(name, input_shape, n_outputs, seed=None, **options)`` returns a
plain ``torch.nn.Module`` producing ``[batch, n_outputs]`` logits (no softmax;
the losses apply it). ``input_shape`` excludes the batch dimension.

========== ======================================================= ===========================
name       architecture (defaults = paper sizes)                    options (default)
========== ======================================================= ===========================
linear     flatten + Linear                                         none
mlp        flatten + Linear-ReLU per hidden layer                   hidden (100, 100)
lenet5     LeNet-5, 61.7k params (28x28 padded to 32x32)           activation "tanh"
alexnet    5 conv + 2 x 4096 fc, 32x32 variant, ~23.3M              width 1, hidden 4096,
                                                                    dropout 0
vgg16      VGG-16-BN, 13 conv + linear head, ~14.7M                 width 1
allcnnc    All-CNN-C (+BN), ~1.37M                                  width 1, dropout 0,
                                                                    batch_norm True
resnet18   CIFAR ResNet-18, ~11.2M                                  width 1
preresnet  pre-activation ResNet-101 (bottleneck, 9n+2), ~1.1M     depth 101, block "auto",
                                                                    width 1
wideresnet WRN-28-10, ~36.5M                                        depth 28, widen 10,
                                                                    dropout 0
squeezenet SqueezeNet 1.1 (+BN), 32x32 stem, ~0.73M                 width 1, dropout 0,
                                                                    batch_norm True
pyramidnet additive PyramidNet-110, alpha 48, ~1.7M                 depth 110, alpha 48
========== ======================================================= ===========================

``width`` multiplies every channel count, and ``depth`` / ``widen`` / ``alpha``
shrink the residual families, so tests and CPU presets can build the same
topologies small. Image models accept any channel count and work for 28x28 and
32x32 inputs (pooling is in ``ceil_mode`` and classifiers sit behind an
adaptive average pool); an input too small for a model's layers is refused at
build time.

Population-batched use with ``torch.func`` (all models, checked by the tests)
-----------------------------------------------------------------------------

Stack K copies with ``params, buffers = torch.func.stack_module_state(models)``
and call ``vmap(lambda p, b, x: functional_call(base, (p, b), (x,)))`` where
``base`` is any one copy (e.g. moved to the ``"meta"`` device). Inputs may be
batched per model (``in_dims=0``) or shared (``in_dims=None``).

* Eval mode: works for every model; BatchNorm uses each copy's own running
  statistics.
* Train mode, BatchNorm included: works with the ordinary ``nn.BatchNorm2d``
  modules, no patching, **provided the buffers are stacked too** (batched along
  the vmap dimension). Each copy normalises with its own batch statistics and
  ``F.batch_norm`` updates that copy's slice of the stacked ``running_mean`` /
  ``running_var`` in place, ``num_batches_tracked`` is incremented per copy;
  the result equals training the copies one by one. Eager training with running
  statistics is untouched, because nothing about the modules changes. (The
  momentum is left at its default 0.1: ``momentum=None`` would call ``float()``
  on a batched counter, which vmap cannot do.)
* What fails: passing unbatched (shared) buffers while the input or parameters
  are batched in train mode - PyTorch refuses the in-place update of an
  unbatched running mean from batched statistics. If shared, never-updated
  buffers are wanted, ``torch.func.replace_all_batch_norm_modules_(model)``
  turns running statistics off (the model then always uses batch statistics,
  in eval mode too).
* Inside ``torch.func.grad`` / ``vjp`` (meta-gradients through an unrolled
  step), pass the buffers as an explicit argument of the transformed function
  (``grad(loss, argnums=0)(params, buffers, x, y)``). Closing over them makes
  the in-place running-stat update mutate a captured tensor, which functorch
  rejects.
* Dropout (off by default everywhere) draws random numbers, so vmap in train
  mode needs ``randomness="different"`` (or ``"same"``) when ``dropout > 0``.
"""

from evomal.tasks.models.zoo import MODELS, ModelSpec, build_model, get_model_spec, model_names

__all__ = ["MODELS", "ModelSpec", "build_model", "get_model_spec", "model_names"]
