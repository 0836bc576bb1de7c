from flexchain.declaration import ServicePackage

# what the kernel discovers (flexchain.catalog): the rest is read from app.py and messages.py
PACKAGE = ServicePackage(name="order", http_port=8081, package=__name__)
