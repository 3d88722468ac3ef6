"""Admission at capacity: requests wait for a free endpoint slot instead of failing.

`Slots.acquire` hands out an endpoint of a self-hosted provider under
`loadBalancing.maxConcurrency`, waiting in the provider's `FairQueue` (weighted
turns by consumer, interactive before batch) when every endpoint is full; with
Redis configured, `SharedSlots` makes the limit hold across all proxy replicas.
`outage_pause` says how long a request may wait for an ejected upstream that
comes back within its wait (a short outage) instead of failing at once.
"""

from lockgate.proxy.admission.slots import (Busy, SlotLease, Slots, Ticket, effective_wait, make_slots,
                                            outage_pause)

__all__ = ["Busy", "SlotLease", "Slots", "Ticket", "effective_wait", "make_slots", "outage_pause"]
