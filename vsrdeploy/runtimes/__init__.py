"""One backend per runtime and the streaming engine. Runtimes consume bundles; exporting is the caller's job
(``vsrdeploy.export``, or ``vsrdeploy.open_bundle`` which exports a checkpoint into the cache first)."""
from .base import Backend, availability, create_backend, list_backends, register_backend
from .engine import Upscaler

__all__ = ["Backend", "Upscaler", "availability", "create_backend", "list_backends", "register_backend"]
