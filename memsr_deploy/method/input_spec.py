"""How pixels enter a network, kept free of torch so the model description can be read without it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class InputSpec:
    """How pixels enter the network: values in [0, value_range], normalised as (x - mean) / norm."""
    value_range: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    norm: float = 1.0

    @property
    def is_identity(self) -> bool:
        return all(m == 0.0 for m in self.mean) and self.norm == 1.0

    def to_dict(self) -> dict:
        return {"value_range": float(self.value_range), "mean": [float(m) for m in self.mean],
                "norm": float(self.norm)}

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        return cls(float(d.get("value_range", 1.0)), tuple(float(m) for m in d.get("mean", (0, 0, 0))),
                   float(d.get("norm", 1.0)))
