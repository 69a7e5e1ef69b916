"""What a DDNN costs: bytes per device, and energy, battery life and latency on real hardware.

* :mod:`~ddnn_tf.core.cost.traffic`: bytes per end device per sample (the paper's eq. 1,
  its generalisation, every link of a tier graph);
* :mod:`~ddnn_tf.core.cost.profiles`: hardware profiles as data (microcontrollers,
  radios, the gateway's WAN link, compute hosts), every figure with its source;
* :mod:`~ddnn_tf.core.cost.radio`: what one message costs on a radio (packets, time on
  air, wake-ups, receive windows);
* :mod:`~ddnn_tf.core.cost.price`: :func:`price`, energy per device per sample, battery
  life and latency per exit in both protocol modes and for the raw-offload and
  always-cloud baselines.

Numpy, jsonschema and the standard library only: a search can price a configuration
without a converted model, an interpreter or the emulator.
"""

from ddnn_tf.core.cost.price import COMPONENTS, MODES, Cost, price
from ddnn_tf.core.cost.profiles import KINDS, Profile, load_profile, profile_names
from ddnn_tf.core.cost.traffic import (
    expected_bytes_per_device,
    hierarchy_bytes,
    paper_bytes_per_device,
)

__all__ = [
    "COMPONENTS",
    "KINDS",
    "MODES",
    "Cost",
    "Profile",
    "expected_bytes_per_device",
    "hierarchy_bytes",
    "load_profile",
    "paper_bytes_per_device",
    "price",
    "profile_names",
]
