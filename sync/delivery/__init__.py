"""Delivering standard documents (sync/standards) to a county platform, shared by the hub's
forwarder (sync/hub/forwarding.py) and a node that sends its own records directly
(sync/client/direct.py): the transports (`transport`) and the per-record delivery states with their
backoff (`states`). Imports edge.core and sync.standards only, never sync.hub or sync.client
(tests/test_layering.py), so both sides keep one copy (docs/interop.md §5, §6)."""
