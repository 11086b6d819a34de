"""HL7 v2 over MLLP from bedside monitors: `mllp` framing, `oru` ORU^R01 -> readings and ACKs,
`driver` the TCP listener that ACKs (AA) only after the commit."""
