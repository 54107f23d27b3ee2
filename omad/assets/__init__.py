"""Pictures for scenes: the sources the asset stage asks (library, stock, generated) and their contract."""
