"""Where a backbone's starting weights come from: nowhere (random), a local file, or a timm pretrained tag.

- ``pretrained_file`` (offline machines): a ``.safetensors`` / ``.pth`` state dict read by timm's own loader, which
  adapts the stem to ``in_chans`` and drops a classifier of another size. It takes precedence over a tag.
- ``pretrained`` (machines with a network, the way timm users name weights): a tag such as ``a1_in1k`` or the full
  name ``resnet18.a1_in1k``. timm fetches it from the Hugging Face hub into the local cache
  (``~/.cache/huggingface``, ``HF_HOME``) on first use and reads it from there afterwards, also offline.
  Without a network and without a cached copy the error names the tag and says how to supply the weights.

Nothing here ever downloads a dataset; a tag is only fetched when a run that names it is trained.
"""
from __future__ import annotations

from dataclasses import dataclass

import timm
import torch.nn as nn

from ..config import ConfigError


def pretrained_name(arch: str, pretrained: str | None) -> str | None:
    """The full timm name ``arch.tag`` of ``pretrained`` (a bare tag or a full name) for ``arch``."""
    if not pretrained:
        return None
    name = pretrained if "." in pretrained else f"{arch}.{pretrained}"
    if name.split(".")[0] != arch.split(".")[0]:
        raise ConfigError(f"model.pretrained: {pretrained!r} are weights of {name.split('.')[0]!r}, not of model.arch "
                          f"{arch!r}")
    if name not in timm.list_pretrained(f"{arch.split('.')[0]}.*"):
        known = ", ".join(t.split(".", 1)[1] for t in timm.list_pretrained(f"{arch.split('.')[0]}.*")[:8]) or "none"
        raise ConfigError(f"model.pretrained: timm has no pretrained weights {name!r}; tags for {arch}: {known}")
    return name


@dataclass(frozen=True)
class WeightSource:
    """What a model would start from, for listings (the paper profile's check)."""

    kind: str  # random | file | timm
    name: str  # the file path or the timm name
    available: bool  # the file exists / the tag is in the local Hugging Face cache
    detail: str

    def describe(self) -> str:
        return "random initialisation" if self.kind == "random" else f"{self.kind} {self.name} ({self.detail})"

    @property
    def tag(self) -> str:
        """For a table cell: ``random``, the timm tag, or the file's name."""
        return "random" if self.kind == "random" else self.name.rsplit("/", 1)[-1]

    @property
    def words(self) -> str:
        """For prose: ``random weights``, ``ImageNet weights (<timm name>)`` or ``weights from <file>``."""
        return {"random": "random weights", "timm": f"ImageNet weights ({self.name})"}.get(
            self.kind, f"weights from {self.name}")


def weights_of(cfg, prefix: str = "") -> WeightSource:
    """The ``WeightSource`` of a model config: its ``arch``, ``pretrained`` and ``pretrained_file`` fields, or the
    ``<prefix>``-named ones (``audio_`` / ``visual_`` of the audio-visual model)."""
    return weight_source(getattr(cfg, f"{prefix}arch"), getattr(cfg, f"{prefix}pretrained"),
                         getattr(cfg, f"{prefix}pretrained_file"))


def weight_source(arch: str, pretrained: str | None = None, pretrained_file: str | None = None) -> WeightSource:
    if pretrained_file:
        from .. import paths

        f = paths.resolve(pretrained_file)
        return WeightSource("file", str(f), f.is_file(), "present" if f.is_file() else "MISSING")
    name = pretrained_name(arch, pretrained)
    if name is None:
        return WeightSource("random", "", True, "")
    cached = _in_hf_cache(name)
    return WeightSource("timm", name, cached, "in the local Hugging Face cache" if cached else
                        "not cached: fetched from the Hugging Face hub on first use (needs a network)")


def _in_hf_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None)
    if not repo:
        return False
    for filename in (getattr(cfg, "hf_hub_filename", None), "model.safetensors", "pytorch_model.bin"):
        if filename and isinstance(try_to_load_from_cache(repo, filename), str):
            return True
    return False


def pretrained_kwargs(pretrained_file: str | None, field: str = "model.pretrained_file") -> dict:
    """timm keyword arguments that load weights from a local file; none without a file."""
    if not pretrained_file:
        return {}
    from .. import paths

    f = paths.resolve(pretrained_file)
    if not f.is_file():
        raise ConfigError(f"{field}: no such file {f} (weights are only read from local files)")
    return dict(pretrained=True, pretrained_cfg_overlay=dict(file=str(f), source=""))


def create_timm(arch: str, pretrained: str | None = None, pretrained_file: str | None = None,
                field: str = "model", **kwargs) -> nn.Module:
    """``timm.create_model`` with the weights ``weight_source`` describes, and errors that name the parameter."""
    name = arch
    if pretrained_file:
        kwargs.update(pretrained_kwargs(pretrained_file, f"{field}.pretrained_file"))
    elif pretrained:
        name = pretrained_name(arch, pretrained)
        kwargs["pretrained"] = True
    try:
        return timm.create_model(name, **kwargs)
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise ConfigError(f"{field}.arch: unknown timm model {arch!r}") from None
        raise
    except Exception as e:  # noqa: BLE001 - a fetch that failed: no network and no cached copy
        if pretrained and not pretrained_file and _is_fetch_error(e):
            raise ConfigError(
                f"{field}.pretrained: cannot fetch timm weights {name!r} ({type(e).__name__}: {str(e)[:160]}). "
                f"On a machine with a network, run `python -c \"import timm; timm.create_model('{name}', "
                f"pretrained=True)\"` to fill the Hugging Face cache (copy ~/.cache/huggingface to this machine), "
                f"or save the weights to a file and set {field}.pretrained_file: <path>.") from None
        raise


def _is_fetch_error(e: Exception) -> bool:
    names = {type(x).__name__ for x in (e, e.__cause__, e.__context__) if x is not None}
    return bool(names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectionError", "HfHubHTTPError",
                         "ConnectTimeout", "ReadTimeout", "URLError", "OSError", "ProxyError", "HTTPError"})
