"""The model zoo: the architectures the compression literature reports on, sized for 28x28 or 32x32 inputs.

Importing this package registers every family (one module each); ``list_models()`` names them.
"""

from slimkit.models import densenet, gan, lenet, mobilenetv2, resnet, vgg  # noqa: F401  (registers the zoo)
from slimkit.models._registry import create_model, list_models, model_spec, register_model

__all__ = ["create_model", "list_models", "model_spec", "register_model"]
