"""One tiny registry type shared by models, datasets and distillation methods.

Adding a model, dataset or method is one new file that decorates its builder::

    @MODELS.register("deeplabv3_resnet18")
    def deeplabv3_resnet18(num_classes, **kw): ...

and ``MODELS.build("deeplabv3_resnet18", num_classes=19)`` then finds it.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Iterator, List, TypeVar

T = TypeVar("T", bound=Callable[..., Any])


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """``" (did you mean X?)"`` for the closest of ``known`` to ``name`` (difflib), or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


class Registry:
    """A named mapping from string keys to builders (functions or classes)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: Dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._items[name]
        except KeyError:
            import difflib

            known = ", ".join(sorted(self._items)) or "(none)"
            close = difflib.get_close_matches(str(name), list(self._items), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise KeyError(f"unknown {self.kind} '{name}'; {hint}registered: {known}") from None

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests that register a throw-away entry)."""
        del self._items[name]

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)

    def names(self) -> List[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


MODELS = Registry("model")
DATASETS = Registry("dataset")
METHODS = Registry("method")   # distillation methods: DistillLoss subclasses in kdlib/methods/, one file each
LOSSES = METHODS               # the former name of METHODS, kept for old imports
