"""fxaug: facial-expression augmentation with expression-transfer GANs.

Entry points: the `fxaug` command line, dataset readers in `fxaug.data`, the emotion
vocabulary in `fxaug.emotions`. Heavy modules (torch models, trainers) load only when used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
