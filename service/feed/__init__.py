"""The blog's feed: fetched with a conditional GET, its entries turned into posts."""
