"""Botify's recommendation service: the course's HTTP API over plain-Python recommenders.

`service.botify.load(config)` builds the logic without HTTP; `service.service` wires it
into BentoML; `service.launch.ServiceProcess` runs it as a subprocess.
"""
