"""The toolkit's vocabularies, each defined once (standard library only).

The Topology, the tier graph, the manifest and its JSON schemas, the runtime, the
services and the command line all take their words from here.

>>> SPLITS[1], TARGET_SUFFIX["lce"]
(('local', 'cloud'), '.lce.tflite')
"""

from __future__ import annotations

__all__ = [
    "AGGREGATION_SCHEMES",
    "CALIBRATION_RULES",
    "CLOUD_PRECISIONS",
    "CORES",
    "DEFAULT_BOARD",
    "DOWNLINK_KINDS",
    "ENGINES",
    "EXITS",
    "LINKS",
    "LOCAL_SCHEMES",
    "LR_SCHEDULES",
    "MCU_TARGETS",
    "PRESET_NAMES",
    "PROFILE_KINDS",
    "PROTOCOL_MODES",
    "ROLES",
    "SENSOR_BITS",
    "SIGNATURE_KEY",
    "SPLITS",
    "SUBSETS",
    "SUMMARY_BITS",
    "SUMMARY_ENCODINGS",
    "TARGETS",
    "TARGET_SUFFIX",
    "TENSOR_DTYPES",
    "TENSOR_ROLES",
    "TRANSPORTS",
]

#: Exits, bottom to top.
EXITS = ("local", "edge", "cloud")
#: The splits a model converts to: the exits kept, bottom to top.
SPLITS = (("cloud",), ("local", "cloud"), ("edge", "cloud"), ("local", "edge", "cloud"))
#: How an aggregator combines its inputs (the paper's MP, AP, CC).
AGGREGATION_SCHEMES = ("max", "avg", "concat")
#: How an aggregator of class summaries (the local aggregator, and the edge exit's)
#: combines them: the schemes above, or ``mlp``, a learned two-layer network over the
#: masked summaries and the presence mask (it runs at the gateway, so it may be float).
LOCAL_SCHEMES = (*AGGREGATION_SCHEMES, "mlp")
#: The cloud's layers: binary ConvP/FC blocks (the paper) or real-valued dense layers.
CLOUD_PRECISIONS = ("binary", "float")
#: Bits per class of a device's summary -> its wire encoding (0: float32 logits).
SUMMARY_BITS = {0: "float32", 4: "int4"}
#: Bits of a device's sensor quantiser -> the codes' dtype (0: none, the sensor's values
#: enter the device as they are; ``ddnn_tf.core.sensors``).
SENSOR_BITS = {0: None, 8: "int8", 16: "int16"}
#: Wire encodings of a class summary.
SUMMARY_ENCODINGS = ("float32", "float16", "int8", "int4")
#: Tier roles, bottom to top.
ROLES = ("device", "local_aggregator", "edge", "edge_aggregator", "cloud")
#: What a tier input or output carries.
TENSOR_ROLES = ("sensor", "summary", "features", "presence", "logits")
#: Tensor dtypes a tier binary's interface may use.
TENSOR_DTYPES = ("float32", "uint8", "int8", "int32")
#: The links whose bytes are counted: devices to the local aggregator, devices to the
#: tier above (edge or cloud), edges to the edge aggregator, edges to the cloud.
LINKS = ("device_to_local", "device_to_upper", "edge_to_aggregator", "edge_to_cloud")
#: Conversion targets: TFLite builtins (LiteRT, LiteRT.js) or larq-compute-engine.
TARGETS = ("portable", "lce")
#: Microcontroller targets of the device tiers, made from their portable binaries: C99
#: sources (``c``) and a TensorFlow Lite Micro variant (``tflm``), see ``ddnn_tf.mcu``.
MCU_TARGETS = ("c", "tflm")
#: File name suffix of each target's tier binary.
TARGET_SUFFIX = {"portable": ".tflite", "lce": ".lce.tflite"}
#: The one signature of every tier binary: its inputs and outputs by name.
SIGNATURE_KEY = "serving_default"
#: The board a device tier in C runs on unless told otherwise (``ddnn_tf.mcu.boards``):
#: an emulated Arm MPS2 AN386, a Cortex-M4 with FPU.
DEFAULT_BOARD = "mps2-an386"
#: Learning-rate schedules of training.
LR_SCHEDULES = ("constant", "cosine")
#: Named training configurations (``ddnn train --preset``).
PRESET_NAMES = ("paper", "default", "best")
#: Exit-threshold calibration rules (``ddnn train --calibrate``): ``risk:DELTA[,EPS]``
#: (the thresholds exiting the most samples early whose accuracy drop is at most DELTA
#: points with probability 1 - EPS), ``within:D`` (the T exiting the most samples early
#: within D accuracy points of the most accurate T), ``accuracy`` (the most accurate T),
#: ``bytes:B`` (the most accurate T within B bytes per device per sample); see
#: ``ddnn_tf.core.calibration``.
CALIBRATION_RULES = ("risk", "within", "accuracy", "bytes")
#: The subsets of a data set a model is run, served or deployed on (``--subset``).
SUBSETS = ("test", "val")
#: Microcontroller cores whose instructions per sample a device tier's C target records
#: (``ddnn_tf.mcu.instructions``); a microcontroller profile names its core.
CORES = ("cortex-m4f", "cortex-m0plus")
#: Kinds of hardware profile (``ddnn_tf.core.cost.profiles``).
PROFILE_KINDS = ("mcu", "radio", "wan", "compute")
#: Device protocols a cost is priced for: the paper's (summary up, decision down, features
#: up for the samples that do not exit locally) and ``eager`` (summary and features up in
#: one message, forwarded by the gateway only when needed).
PROTOCOL_MODES = ("paper", "eager")
#: How a radio's device receives the gateway's decision: at a fixed delay after its uplink
#: (LoRaWAN class A), at its next scheduled event (BLE, a polling 802.15.4 child), or
#: listening until it arrives (Wi-Fi, cellular connected mode).
DOWNLINK_KINDS = ("fixed", "event", "listen")
#: What serves the cloud tier: uvicorn in the process, or a Ray Serve deployment.
ENGINES = ("uvicorn", "ray")
#: How the end devices and their gateway talk: HTTP, or MQTT through a broker.
TRANSPORTS = ("http", "mqtt")
