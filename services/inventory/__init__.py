from flexchain.declaration import ServicePackage

# what the kernel discovers (flexchain.catalog): the rest is read from app.py and messages.py
PACKAGE = ServicePackage(
    name="inventory",
    http_port=8082,
    package=__name__,
    entities={"sku": "/skus/{}", "skus": "/skus"},  # `flexchain as-of inventory <kind>/<id>`: its R-X-4 routes
)
