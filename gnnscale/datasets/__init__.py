from .registry import load_dataset
