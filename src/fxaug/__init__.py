"""fxaug: facial-expression augmentation with expression-transfer GANs.

    import fxaug
    ds = ds.map(fxaug.augment, batched=True, with_indices=True)    # Hugging Face datasets
    A.Compose([fxaug.ExpressionTransfer("happy")])                  # Albumentations
    images, labels = fxaug.ExpressionBatchTransfer(classes)(images, labels)   # torch, after collate
    fxaug.ExpressionPipeline(model).transfer(images, "happy")       # the engine itself

Heavy modules (torch models, albumentations, datasets) load only when one of these is used.
"""

__version__ = "0.1.0"

_LAZY = {
    "augment": "hf",
    "Augmenter": "hf",
    "ExpressionTransfer": "transforms",
    "ExpressionBatchTransfer": "batch",
    "ExpressionPipeline": "pipeline",
    "open_dataset": "data",
    "load_model": "models",
    "list_models": "models",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
