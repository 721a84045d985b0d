"""Bringing old comments over from another blog system: WordPress (WXR) and Disqus exports."""
