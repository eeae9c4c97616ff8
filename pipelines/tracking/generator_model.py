"""The pyfunc model's code, logged as a file ("models from code") rather than a pickled object,
so that loading a registered generator unpickles nothing: the weights arrive through
`torch.load(..., weights_only=True)` in GeneratorModel.load_context."""

import mlflow

from pipelines.tracking.model import GeneratorModel

mlflow.models.set_model(GeneratorModel())
