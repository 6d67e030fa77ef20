"""domain: an Ash-style domain layer.

Will hold resources, actions, validations, policies, notifiers and the SQLAlchemy data layer,
exposed through code interfaces that take an actor. Not written yet.
"""

__all__: tuple[str, ...] = ()
