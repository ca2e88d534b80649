"""Built-in data sets, spike encoders and loaders for event-camera / audio spike data (no downloads, ever).

* :func:`load_digits` / :func:`load_digits_spikes`: scikit-learn's 8x8 digits with a fixed seeded split.
* :func:`load_mnist1d`: MNIST-1D generated locally, as a 40-step sequence.
* :func:`rate_encode`, :func:`latency_encode`, :class:`RateEncoder`: spike encoders.
* :func:`make_event_dataset`, :func:`make_event_streams`, :func:`bin_events`: a generated DVS-like task.
* :func:`load_nmnist`, :func:`load_shd`, :func:`load_dvs_gesture`: the user's copies of those data sets.
* :class:`SplitDataset`, :func:`iterate_batches`: the common container and a seeded batch iterator.
"""
from .base import SplitDataset, iterate_batches
from .digits import load_digits, load_digits_spikes
from .encoders import RateEncoder, latency_encode, rate_encode
from .events import EVENT_DTYPE, bin_events, make_event_dataset, make_event_streams
from .mnist1d import load_mnist1d, mnist1d_args
from .tonic_loaders import EventFileDataset, load_dvs_gesture, load_nmnist, load_shd

__all__ = [
    "SplitDataset", "iterate_batches", "load_digits", "load_digits_spikes", "RateEncoder", "rate_encode",
    "latency_encode", "EVENT_DTYPE", "bin_events", "make_event_dataset", "make_event_streams", "load_mnist1d",
    "mnist1d_args", "EventFileDataset", "load_nmnist", "load_shd", "load_dvs_gesture",
]
