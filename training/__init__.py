"""Botify's offline half: the service's logs become tracked, versioned embedding models.

training/ reads only the public catalog and the service's event logs; it runs the
simulator only as a command and never imports `sim`.
"""
