"""The one error the infra commands raise: a single line a person can act on."""


class InfraError(RuntimeError):
    """Starting, checking or stopping local infrastructure failed; the message says why."""
