"""Admission at capacity: requests wait for a free endpoint slot instead of failing.

`Slots.acquire` hands out an endpoint of a self-hosted provider under
`loadBalancing.maxConcurrency`, waiting in the provider's `FairQueue` (weighted
turns by consumer, interactive before batch) when every endpoint is full; with
Redis configured, `SharedSlots` makes the limit hold across all proxy replicas.
"""

from lockgate.proxy.admission.slots import Busy, SlotLease, Slots, Ticket, effective_wait, make_slots

__all__ = ["Busy", "SlotLease", "Slots", "Ticket", "effective_wait", "make_slots"]
