"""The steps of the request pipeline, one module each; `lockgate.proxy.pipeline.build` assembles them."""
