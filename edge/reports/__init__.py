"""Reports that write themselves: the worklist, the monthly/quarterly KPIs and their exports.

Pure computations (`population`, `kpi`, `worklist`, `export`) work on plain records; `source`
loads those records from the store and `archive` writes a finished report to the outbox.
Depends on edge.core only.
"""
