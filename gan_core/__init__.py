"""gan_core: GANs in PyTorch — models, losses, the training loop, datasets, metrics, pictures.

Needs only torch, numpy, scipy, scikit-learn, Pillow (and matplotlib for 2-D plots). The
pipeline in `pipelines/` plugs Ray, MLflow and Prefect into the loop's hooks.
"""

__version__ = "0.1.0"
