"""The node's domain core: model, codes and units, store, config, audit. No Flask here."""
