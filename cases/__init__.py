"""Cases: reference data from the enforcement system (units, officers, devices, cases), linking recordings to inspections, and search."""
