"""Tier runners: one converted tier binary behind a name-bound, batch-friendly call.

A :class:`TierRunner` takes a dict ``{input name: (N, ...) array}`` and returns a dict
``{output name: (N, ...) array}``, whatever the interpreter underneath:

* ``portable`` (``*.tflite``, TFLite builtin ops) runs on ``ai-edge-litert``'s
  ``Interpreter`` through its ``serving_default`` signature runner, which binds tensors
  by name and resizes the batch dimension (the files are exported with batch 1).
* ``lce`` (``*.lce.tflite``, larq-compute-engine bit-packed kernels) runs on LCE's
  interpreter. It has no signature API and cannot resize inputs, so tensors are bound
  through the manifest's ``input_order``/``output_order`` (the signature names in the
  flatbuffer's positional order) and a batch runs one sample at a time.

Only numpy and the interpreters are imported. LCE's Python package imports TensorFlow
from its ``__init__`` (for its converter), so its interpreter extension module is
loaded directly from the installed package, without running that ``__init__``; the
``lce`` target therefore needs the ``larq-compute-engine`` package installed, but not
TensorFlow to be importable at run time.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.core.tflite_check import check_tier_binary
from ddnn_tf.core.vocab import SIGNATURE_KEY, TARGETS
from ddnn_tf.errors import ConfigError

__all__ = ["TARGETS", "TierRunner", "load_lce_interpreter"]

_LCE_MODULE = "larq_compute_engine.tflite.python.interpreter_wrapper_lite"
_DTYPES = {"float32": np.float32, "uint8": np.uint8, "int8": np.int8, "int32": np.int32}


def load_lce_interpreter():
    """The ``LiteInterpreter`` class of larq-compute-engine, without importing TensorFlow.

    Raises:
        ConfigError: larq-compute-engine is not installed.
    """
    if _LCE_MODULE in sys.modules:
        return sys.modules[_LCE_MODULE].LiteInterpreter
    spec = importlib.util.find_spec("larq_compute_engine")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "The lce target needs the larq-compute-engine package (pip install "
            "larq-compute-engine); use `target` portable to run with ai-edge-litert only."
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "tflite" / "python"
    candidates = sorted(folder.glob("interpreter_wrapper_lite*.so")) + sorted(
        folder.glob("interpreter_wrapper_lite*.pyd")
    )
    if not candidates:
        raise ConfigError(
            f"larq-compute-engine is installed at {folder.parent.parent} but has no "
            "interpreter_wrapper_lite extension; reinstall larq-compute-engine."
        )
    module_spec = importlib.util.spec_from_file_location(_LCE_MODULE, candidates[0])
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    sys.modules[_LCE_MODULE] = module
    return module.LiteInterpreter


def _portable_interpreter():
    """ai-edge-litert's ``Interpreter`` class (ValueError when it is not installed)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ConfigError(
            "The portable target needs the ai-edge-litert package (pip install ai-edge-litert)."
        ) from None
    return Interpreter


class TierRunner:
    """Run one tier binary on batches, binding inputs and outputs by name.

    Args:
        name: the tier name (``device_0``, ``local_aggregator``, ``cloud`` ...).
        model: the flatbuffer bytes of the tier for ``target``.
        target: ``"portable"`` or ``"lce"``.
        inputs: the manifest's input tensor entries ``[{name, shape, dtype, ...}]``;
            shapes include the batch dimension 1.
        outputs: the manifest's output tensor entries, likewise.
        input_order: input signature names in the flatbuffer's positional order
            (required for ``lce``).
        output_order: output signature names in the flatbuffer's positional order
            (required for ``lce``).
        num_threads: interpreter threads.
        file: the binary's path, named in errors.
        ops: the manifest's operator counts of the file, checked against it.

    Raises:
        ValueError: unknown target, a missing interpreter package, or a binary that
            :func:`ddnn_tf.core.tflite_check.check_tier_binary` refuses (malformed, operators
            the target cannot resolve, a signature that does not match the manifest),
            naming the tier and the file.

    Example:
        >>> from ddnn_tf.core.manifest import load_manifest
        >>> m = load_manifest("tflite_models/fmnist6_mlpcc")
        >>> runner = TierRunner.from_manifest(m, "device_0", "portable")
        >>> out = runner({"image": np.zeros((3, 10, 14, 1), np.float32)})
        >>> out["summary"].shape, out["features"].shape
        ((3, 10), (3, 5, 7, 4))
    """

    def __init__(
        self,
        name: str,
        model: bytes,
        *,
        target: str,
        inputs: list[Mapping[str, Any]],
        outputs: list[Mapping[str, Any]],
        input_order: list[str] | None = None,
        output_order: list[str] | None = None,
        num_threads: int = 1,
        file: str | None = None,
        ops: Mapping[str, int] | None = None,
    ) -> None:
        if target not in TARGETS:
            raise ConfigError(f"Expected a target in {TARGETS}. Received target={target!r}.")
        # No interpreter ever sees a file that is truncated, garbage or for another target.
        check_tier_binary(
            model,
            tier=name,
            file=file or f"{target} binary",
            target=target,
            inputs=inputs,
            outputs=outputs,
            input_order=input_order,
            output_order=output_order,
            ops=ops,
        )
        self.name = name
        self.target = target
        self.input_shapes = {t["name"]: tuple(int(d) for d in t["shape"][1:]) for t in inputs}
        self.input_dtypes = {
            t["name"]: np.dtype(_DTYPES.get(t["dtype"], t["dtype"])) for t in inputs
        }
        self.output_shapes = {t["name"]: tuple(int(d) for d in t["shape"][1:]) for t in outputs}
        self.output_names = list(self.output_shapes)
        if target == "portable":
            litert = _portable_interpreter()
            interpreter = self._open(
                lambda m, n: litert(model_content=m, num_threads=n), model, num_threads, file
            )
            signatures = interpreter.get_signature_list()
            if SIGNATURE_KEY not in signatures:
                raise ConfigError(
                    f"Tier {name}: the {target} binary has no {SIGNATURE_KEY!r} signature "
                    f"(found {sorted(signatures)}); convert it again."
                )
            self._check_names(
                "inputs", signatures[SIGNATURE_KEY]["inputs"], list(self.input_shapes)
            )
            self._check_names("outputs", signatures[SIGNATURE_KEY]["outputs"], self.output_names)
            self._runner = interpreter.get_signature_runner(SIGNATURE_KEY)
            self._interpreter = interpreter
        else:
            if input_order is None or output_order is None:
                raise ConfigError(
                    f"Tier {name}: the manifest gives no input_order/output_order for the lce "
                    "file; LCE's interpreter binds tensors by position. Convert it again."
                )
            self._check_names("input_order", input_order, list(self.input_shapes))
            self._check_names("output_order", output_order, self.output_names)
            lce = load_lce_interpreter()
            self._interpreter = self._open(
                lambda m, n: lce(m, n, False, False, False), model, num_threads, file
            )
            self._input_order = list(input_order)
            self._output_order = list(output_order)
            shapes = [tuple(s) for s in self._interpreter.input_shapes]
            for pos, key in enumerate(self._input_order):
                if shapes[pos][1:] != self.input_shapes[key]:
                    raise ConfigError(
                        f"Tier {name}: lce input {pos} ({key!r}) has shape {shapes[pos]}, the "
                        f"manifest says {(1, *self.input_shapes[key])}; the manifest's "
                        "input_order does not match the file."
                    )

    def _open(self, make, model: bytes, num_threads: int, file: str | None):
        """The interpreter of ``model``; its refusal becomes an error naming tier and file."""
        try:
            return make(model, num_threads)
        except (RuntimeError, ValueError) as err:  # what check_tier_binary cannot see
            raise ConfigError(
                f"Tier {self.name} ({file or self.target + ' binary'}): the {self.target} "
                f"interpreter refused the file: {err}; convert the model again."
            ) from None

    @classmethod
    def from_manifest(cls, manifest, name: str, target: str, *, num_threads: int = 1) -> TierRunner:
        """The runner of tier ``name``'s ``target`` file in a loaded manifest.

        Args:
            manifest: a :class:`ddnn_tf.core.manifest.Manifest` (from ``load_manifest``).
            name: the tier name.
            target: ``"portable"`` or ``"lce"``.
            num_threads: interpreter threads.

        Raises:
            KeyError: an unknown tier, or a target the manifest does not hold.
            ValueError: as the constructor.
        """
        path = manifest.path(name, target)  # KeyError naming what exists
        model = path.read_bytes()
        tier = manifest["tiers"][name]
        entry = tier["files"][target]
        return cls(
            name,
            model,
            target=target,
            inputs=tier["inputs"],
            outputs=tier["outputs"],
            input_order=entry.get("input_order"),
            output_order=entry.get("output_order"),
            num_threads=num_threads,
            file=str(path),
            ops=entry.get("ops"),
        )

    def _check_names(self, what: str, found, expected: list[str]) -> None:
        if sorted(found) != sorted(expected):
            raise ConfigError(
                f"Tier {self.name}: the {self.target} binary's {what} are {sorted(found)}, "
                f"the manifest says {sorted(expected)}; the file and manifest disagree."
            )

    @property
    def input_names(self) -> list[str]:
        return list(self.input_shapes)

    def _checked(self, feeds: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
        missing = [k for k in self.input_shapes if k not in feeds]
        unknown = [k for k in feeds if k not in self.input_shapes]
        if missing or unknown:
            raise ConfigError(
                f"Tier {self.name}: expected inputs {self.input_names}; missing {missing}, "
                f"unknown {unknown}."
            )
        out: dict[str, np.ndarray] = {}
        sizes = set()
        for key, shape in self.input_shapes.items():
            x = np.asarray(feeds[key])
            if tuple(x.shape[1:]) != shape:
                raise ConfigError(
                    f"Tier {self.name}: input {key!r} has shape {tuple(x.shape)}, expected "
                    f"(N, {', '.join(map(str, shape))})."
                )
            dtype = self.input_dtypes[key]
            if x.dtype != dtype:
                raise ConfigError(
                    f"Tier {self.name}: input {key!r} has dtype {x.dtype}, expected {dtype}."
                )
            out[key] = np.ascontiguousarray(x)
            sizes.add(x.shape[0])
        if len(sizes) != 1:
            raise ConfigError(f"Tier {self.name}: inputs differ in batch size: {sorted(sizes)}.")
        return out, sizes.pop()

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a batch.

        Args:
            feeds: input name -> array ``(N, *shape)`` of the manifest's dtype.

        Returns:
            output name -> array ``(N, *shape)`` (fresh arrays, safe to keep).

        Raises:
            ValueError: a missing or unknown input name, a wrong shape or dtype.
        """
        feeds, n = self._checked(feeds)
        return self.run([feeds[k] for k in self.input_names])

    def run(self, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
        """The fast call path: inputs in :attr:`input_names` order, unchecked.

        Tensors are bound by the indices the signature gives, resolved once; the batch
        dimension is resized (and tensors reallocated) only when the batch size changes.

        Args:
            arrays: one C-contiguous ``(N, *shape)`` array of the manifest's dtype per
                input, all with the same ``N`` (what :meth:`__call__` checks).

        Returns:
            output name -> fresh ``(N, *shape)`` array.
        """
        n = len(arrays[0])
        if n == 0:
            return {k: np.zeros((0, *s), np.float32) for k, s in self.output_shapes.items()}
        if self.target == "portable":
            return self._run_portable(arrays, n)
        feeds = dict(zip(self.input_names, arrays))
        rows: list[list[np.ndarray]] = []
        for i in range(n):
            args = [feeds[k][i : i + 1] for k in self._input_order]
            rows.append([np.array(a) for a in self._interpreter.predict(args)])
        stacked = [np.concatenate(col, axis=0) for col in zip(*rows)]
        return dict(zip(self._output_order, stacked))

    def _run_portable(self, arrays: list[np.ndarray], n: int) -> dict[str, np.ndarray]:
        # The same wrapper calls as LiteRT's SignatureRunner.__call__, minus what it does on
        # every call regardless: resizing every input and reallocating every tensor. (The
        # interpreter's public set_tensor/invoke refuse to run while a signature runner
        # holds the wrapper.)
        bound = getattr(self, "_bound", None)
        if bound is None:
            ins = self._runner.get_input_details()
            outs = self._runner.get_output_details()
            bound = self._bound = {
                "wrapper": self._runner._interpreter_wrapper,
                "subgraph": self._runner._subgraph_index,
                "inputs": [ins[k]["index"] for k in self.input_names],
                "outputs": [(k, outs[k]["index"]) for k in self.output_names],
                "batch": None,
            }
        wrapper, subgraph = bound["wrapper"], bound["subgraph"]
        if bound["batch"] != n:
            for index, key in zip(bound["inputs"], self.input_names):
                shape = np.array([n, *self.input_shapes[key]], np.int32)
                wrapper.ResizeInputTensor(index, shape, False, subgraph)
            wrapper.AllocateTensors(subgraph)
            bound["batch"] = n
        for index, array in zip(bound["inputs"], arrays):
            wrapper.SetTensor(index, array, subgraph)
        wrapper.Invoke(subgraph)
        return {k: wrapper.GetTensor(index, subgraph) for k, index in bound["outputs"]}
