from flexchain.declaration import ServicePackage

# what the kernel discovers (flexchain.catalog): the rest is read from app.py and messages.py
PACKAGE = ServicePackage(
    name="order",
    http_port=8081,
    package=__name__,
    entities={"order": "/orders/{}"},  # `flexchain as-of order <kind>/<id>`: its R-X-4 routes
)
