"""Who a message or a click speaks for: reply addresses and the signed tokens inside them."""
