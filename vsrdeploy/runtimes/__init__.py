"""One backend per runtime, the streaming engine and video I/O."""
from .base import Backend, availability, create_backend, list_backends, register_backend
from .engine import Upscaler, open_bundle

__all__ = ["Backend", "Upscaler", "availability", "create_backend", "list_backends", "open_bundle",
           "register_backend"]
