"""Console pages. Each page reads through the same domain services as the API, as the signed-in user's
principal, so what a page shows or does is exactly what that user's API key could; every form carries the
session's CSRF token; a refused action is shown as a message on the page."""

from __future__ import annotations

from api.console import browse, office, signin

# each module's pages: under /console, outside the API's schema
routers = [pages.router for pages in (signin, office, browse)]
