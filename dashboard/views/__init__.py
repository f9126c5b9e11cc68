"""One module per page family; each view is a small function behind `staff_page`."""
