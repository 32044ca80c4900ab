"""cardiostream's shared core: contracts, settings, DSP, labels, records and scoring.

Imports no faust, Kafka, Redis or torch code; every service imports this package.
"""

__version__ = "0.1.0"
