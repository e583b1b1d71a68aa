"""The product's BentoML service plus the benchmark's own ceiling route, for `benchmarks.service`.

`POST /bench/trivial/{user}` parses the same JSON as `/next` and touches no state: BentoML's
ceiling in the very server being measured. It lives here, not in the product, so a deployed
service has no route that only a benchmark needs:

    bentoml serve benchmarks.bench_service:Botify --port 3001
"""
from __future__ import annotations

import json

import bentoml
from fastapi import Request
from fastapi.responses import Response

from service import service as product


@product.app.post("/bench/trivial/{user}", include_in_schema=False)
async def trivial(user: str, request: Request) -> Response:
    """BentoML's ceiling for the benchmark: parses the same JSON, touches no state."""
    try:
        data = json.loads(await request.body())
        return Response(b'{"user":%d,"track":%d}' % (int(user), data["track"]), media_type=product.JSON)
    except (ValueError, TypeError, KeyError) as e:
        return Response(json.dumps({"error": f"bad benchmark request: {e}"}), status_code=400,
                        media_type=product.JSON)


# The product's service class under the same configuration: BentoML's workers import this
# module (a service's import string is where its class is defined), so the route above is
# registered in every worker.
@bentoml.service(name=product.Botify.name, **product.Botify.config)
@bentoml.asgi_app(product.app, path="/")
class Botify(product.Botify.inner):
    pass
