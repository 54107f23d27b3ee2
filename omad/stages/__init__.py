"""Stage modules, one per stage; each follows the contract in ``omad.stage``."""
