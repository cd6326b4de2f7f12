"""The browser view: a hub of every stream's state and pictures, and the page that shows them."""
