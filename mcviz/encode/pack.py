"""The packed file: ``pack(model) -> bytes`` and ``unpack(data) -> model``, a lossless round trip.

Layout (all integers little-endian)::

    magic        8 bytes   b"\\x89MCZPK\\r\\n" (binary, and a text-mode transfer breaks it visibly)
    version      1 byte    FORMAT_VERSION
    length       4 bytes   the number of payload bytes
    payload      length    architecture size (4 bytes), the architecture (zlib-compressed JSON:
                           every module with its constructor arguments, and how each layer is
                           stored), then one section per Linear / Conv2d layer in module order
                           (``mcviz.encode.sections``)
    checksum     4 bytes   CRC-32 of everything before it

A file that is cut short, changed in any byte (the checksum), of another format (the magic), of a
newer version, or whose content does not decode exactly to the end is refused with one line
(``FormatError``): it never becomes a silently wrong model. ``save`` writes atomically.

Models that can be packed: an ``nn.Sequential`` (nested ones too) of Linear / Conv2d layers
(plain float32, pruned, k-means, quantized, or their encoded forms) and ReLU, Tanh, Sigmoid,
Identity, Flatten, Dropout, MaxPool2d and AvgPool2d; ``model.input_shape`` is kept. Anything else
(another module, a forward hook, float16 weights) is refused before anything is written.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from pathlib import Path

import torch
from torch import nn

from mcviz import _layers
from mcviz.encode import sections
from mcviz.encode.layers import ENCODED, _Encoded

MAGIC = b"\x89MCZPK\r\n"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sBI")  # magic, version, payload length
_CRC = struct.Struct("<I")
# modules without weights, with the constructor arguments that rebuild them
SIMPLE = {
    "ReLU": (nn.ReLU, ("inplace",)),
    "Tanh": (nn.Tanh, ()),
    "Sigmoid": (nn.Sigmoid, ()),
    "Identity": (nn.Identity, ()),
    "Flatten": (nn.Flatten, ("start_dim", "end_dim")),
    "Dropout": (nn.Dropout, ("p", "inplace")),
    "MaxPool2d": (
        nn.MaxPool2d,
        ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"),
    ),
    "AvgPool2d": (nn.AvgPool2d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")),
}


class FormatError(ValueError):
    """The bytes are not a packed mcviz model this version can read; the message says why, in one line."""


def pack(model: nn.Module) -> bytes:
    """Returns the bytes of the packed file of ``model`` (see the module doc); ``model`` is left
    unchanged.

    Pruned, k-means and quantized layers are stored as mcviz counts them (a 1-bit mask, codes at
    their bit width) unless they are encoded (``mcv.encode.encoded``: relative indices, Huffman
    codes). ``unpack(pack(model))`` computes exactly what ``model`` computes.

    Raises:
        ValueError: a model that cannot be packed (the first module that is not supported).
    """
    modules, layers = _describe(model)
    architecture = {"format": "mcviz.encode", "modules": modules}
    shape = getattr(model, "input_shape", None)
    if shape is not None:
        architecture["input_shape"] = [int(s) for s in shape]
    blob = zlib.compress(json.dumps(architecture, separators=(",", ":"), sort_keys=True).encode(), 9)
    body = [len(blob).to_bytes(4, "little"), blob]
    for layer, index_bits, coded in layers:
        body += [p.data for p in sections.parts(layer, index_bits, coded)]
    payload = b"".join(body)
    head = _HEADER.pack(MAGIC, FORMAT_VERSION, len(payload)) + payload
    return head + _CRC.pack(zlib.crc32(head))


def unpack(data: bytes, *, like: nn.Module | None = None) -> nn.Module:
    """Returns the model stored in ``data`` (from :func:`pack`), in eval mode; ``data`` is left
    unchanged.

    Args:
        data: the bytes of a packed file.
        like: optionally, a model whose architecture the file must have: the same modules under the
            same names, the same layer shapes (e.g. the code that builds the network you expect).

    Raises:
        FormatError: not a packed mcviz model, another version, cut short, corrupted, or content
            that does not decode; or, with ``like``, an architecture that differs from it.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    payload = _open(data)
    try:
        size = int.from_bytes(payload[:4], "little")
        if size > len(payload) - 4:
            raise ValueError(f"the architecture claims {size} bytes, the payload has {len(payload) - 4}")
        architecture = json.loads(zlib.decompress(payload[4 : 4 + size]))
        model, layers = _build(architecture)
        at = 4 + size
        for name, entry in layers:
            layer = model.get_submodule(name)
            shape = tuple(_layers.weight(layer).shape)
            state, at = sections.read(entry["kind"], shape, entry, layer.bias is not None, payload, at)
            _load(layer, state, entry)
        if at != len(payload):
            raise ValueError(f"{len(payload) - at} bytes are left after the last layer")
    except FormatError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever a malformed payload breaks, the file is bad
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise FormatError(
            f"the packed file is valid on the outside but its content does not decode: {first}"
        ) from None
    if like is not None:
        _check_like(model, like)
    return model.eval()


def save(model: nn.Module, path: str | os.PathLike) -> int:
    """Writes ``pack(model)`` to ``path`` atomically (a temporary file, then a rename: a failure
    leaves no file behind) and returns the number of bytes written."""
    data = pack(model)
    write_atomic(Path(path), data)
    return len(data)


def load(path: str | os.PathLike, *, like: nn.Module | None = None) -> nn.Module:
    """Returns the model packed in the file ``path`` (see :func:`unpack`)."""
    return unpack(Path(path).read_bytes(), like=like)


def overhead(model: nn.Module) -> int:
    """Returns the bytes of ``pack(model)`` that no layer stores: header, architecture, checksum.

    For an encoded model, ``len(pack(model)) == mcv.measure.model(model).size_bytes + overhead(model)``
    whenever every layer is encoded or plain (a plain pruned layer also counts a kept weight that
    is exactly zero, which ``size_bytes`` leaves out)."""
    _, layers = _describe(model)
    stored = sum(len(p.data) for layer, b, c in layers for p in sections.parts(layer, b, c))
    return len(pack(model)) - stored


def write_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same folder and a rename, so the
    file appears whole or not at all (a failure removes the temporary file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- the container


def _open(data: bytes) -> bytes:
    """Returns the payload of a packed file after checking magic, version, length and checksum."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        start = data[: len(MAGIC)]
        raise FormatError(f"not a packed mcviz model: it starts with {start!r}, expected {MAGIC!r}")
    if len(data) < _HEADER.size:
        raise FormatError(f"truncated: {len(data)} bytes, shorter than the {_HEADER.size}-byte header")
    _, version, length = _HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise FormatError(f"packed with format version {version}; this mcviz reads version {FORMAT_VERSION}")
    expected = _HEADER.size + length + _CRC.size
    if len(data) < expected:
        raise FormatError(f"truncated: the header says {expected:,} bytes, the file has {len(data):,}")
    if len(data) > expected:
        raise FormatError(f"{len(data) - expected:,} unexpected bytes after the end of the packed model")
    (stored,) = _CRC.unpack_from(data, expected - _CRC.size)
    actual = zlib.crc32(data[: expected - _CRC.size])
    if stored != actual:
        raise FormatError(f"corrupted: the checksum is {stored:#010x}, the content's is {actual:#010x}")
    return data[_HEADER.size : expected - _CRC.size]


def _describe(model: nn.Module):
    """Returns (module entries for the JSON, [(layer, index_bits, huffman)] in order)."""
    from mcviz._checks import check_model

    check_model(model, dtypes=("float32",))
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        raise ValueError(f"pack stores nn.Sequential models, got {type(model).__name__}")
    modules, layers = [], []
    for name, m in model.named_modules():
        if m._forward_hooks or m._forward_pre_hooks:
            raise ValueError(
                f"pack cannot store forward hooks (module {name or '(the model)'!r}), e.g. of fp16 models"
            )
        if not name:
            continue
        entry = {"name": name, "type": type(m).__name__}
        kind = sections.kind_of(m)
        if isinstance(m, nn.Sequential) and type(m) is nn.Sequential:
            pass
        elif type(m).__name__ in SIMPLE and type(m) is SIMPLE[type(m).__name__][0]:
            entry["args"] = {a: getattr(m, a) for a in SIMPLE[type(m).__name__][1]}
        elif kind is not None:
            mask = _layers.mask(m) if kind != "dense" else None
            encoded = isinstance(m, _Encoded)
            index_bits = m.index_bits if encoded and mask is not None else None
            coded = m.huffman if encoded else False
            store = {"kind": kind, "encoded": encoded, "mask": mask is not None, "index_bits": index_bits,
                     "huffman": coded, **sections.options(m)}  # fmt: skip
            if kind == "quant" and m.act_scale is not None:
                store.update(act_bits=m.act_bits, act_symmetric=m.act_symmetric)
            entry.update(layer=_layers.kind(m).__name__, args=_layers.constructor_args(m), store=store)
            layers.append((m, index_bits, coded))
        else:
            supported = ", ".join(["Linear", "Conv2d", *SIMPLE])
            raise ValueError(
                f"pack cannot store module {name!r} ({type(m).__name__}); it stores nn.Sequential models of "
                f"{supported} (Linear / Conv2d plain float32, pruned, k-means or quantized)"
            )
        modules.append(entry)
    if not layers:
        raise ValueError(f"model {type(model).__name__} has no Linear or Conv2d layer to pack")
    return modules, layers


def _build(architecture: dict):
    """Returns (the model the architecture describes, [(layer name, store entry)]), with empty layers."""
    if architecture.get("format") != "mcviz.encode":
        raise ValueError("the architecture is not mcviz.encode's")
    model = nn.Sequential()
    layers = []
    for entry in architecture["modules"]:
        name, kind = entry["name"], entry["type"]
        parent, _, child = name.rpartition(".")
        if kind == "Sequential":
            module = nn.Sequential()
        elif "store" in entry:
            module = _empty_layer(entry)
            layers.append((name, entry["store"]))
        elif kind in SIMPLE:
            module = SIMPLE[kind][0](**_tuples(entry.get("args", {})))
        else:
            raise ValueError(f"unknown module type {kind!r}")
        model.get_submodule(parent).add_module(child, module)
    if "input_shape" in architecture:
        model.input_shape = tuple(int(s) for s in architecture["input_shape"])
    return model, layers


def _empty_layer(entry: dict) -> nn.Module:
    store, base = entry["store"], {"Linear": nn.Linear, "Conv2d": nn.Conv2d}[entry["layer"]]
    args = _tuples(entry["args"])
    if store["kind"] == "dense":
        return base(**args, device="meta")  # its tensors are set from the section (_load)
    plain = sections.CLASSES[store["kind"], entry["layer"]]
    opts = {k: store[k] for k in ("bits", "granularity", "symmetric") if k in store}
    if store["encoded"]:
        opts.update(index_bits=store["index_bits"], huffman=store["huffman"])
        return ENCODED[plain](**args, **opts)
    return plain(**args, **opts)


def _load(layer: nn.Module, state: dict, store: dict) -> None:
    act = {k: state.pop(k) for k in ("act_scale", "act_zero_point") if k in state}
    if store["kind"] == "dense":
        state = {k: torch.nn.Parameter(v) for k, v in state.items()}
        layer.weight, layer.bias = state["weight"], state.get("bias")
    else:
        layer.load_state_dict(state, strict=True)
    if act:
        layer.quantize_input(
            act["act_scale"], act["act_zero_point"], store["act_bits"], symmetric=store["act_symmetric"]
        )


def _check_like(model: nn.Module, like: nn.Module) -> None:
    if not isinstance(like, nn.Module):
        raise TypeError(f"like must be a torch.nn.Module, got {type(like).__name__}")
    got = _signature(model)
    want = _signature(like)
    for name in sorted(set(got) | set(want), key=lambda n: (n not in want, n)):
        if got.get(name) != want.get(name):
            raise FormatError(
                f"the packed model does not match the expected architecture at {name!r}: "
                f"file {got.get(name, 'missing')}, expected {want.get(name, 'missing')}"
            )


def _signature(model: nn.Module) -> dict[str, str]:
    out = {}
    for name, m in model.named_modules():
        if not name:
            continue
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            out[name] = f"{_layers.kind(m).__name__} {tuple(_layers.weight(m).shape)}"
        else:
            out[name] = type(m).__name__
    return out


def _tuples(args: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
