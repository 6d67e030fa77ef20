"""supervisors: OTP supervision on top of beam.

Will hold Supervisor and DynamicSupervisor (child specs, restart strategies and intensity),
Task.Supervisor, Application, and seeded, replayable fault injection. Not written yet.
"""

__all__: tuple[str, ...] = ()
