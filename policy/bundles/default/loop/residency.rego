package loopgate.loop

regions := {r | some r in list(input, "regions")}

allowed_regions := {r | some r in list(input.team, "allowedRegions")}

# The residency must be a region that exists in the cluster catalog...
findings.deny contains violation(
	"REGION_UNKNOWN",
	sprintf("residency %q is not a region of the cluster catalog; use one of: %s", [spec.residency, concat(", ", sort(regions))]),
	"spec.residency",
) if {
	changes_spec
	not spec.residency in regions
}

# ...that the owning team may use...
findings.deny contains violation(
	"REGION_NOT_ALLOWED",
	sprintf("team %q may not use region %q; its allowed regions are: %s (ask the platform team to extend the team catalog)", [input.team.name, spec.residency, concat(", ", sort(allowed_regions))]),
	"spec.residency",
) if {
	changes_spec
	spec.residency in regions
	not spec.residency in allowed_regions
}

# ...and PII stays in the regions approved for it.
findings.deny contains violation(
	"PII_RESIDENCY",
	sprintf("pii data may only be stored in: %s; region %q is not one of them", [concat(", ", sort(list(config, "pii_regions"))), spec.residency]),
	"spec.residency",
) if {
	changes_spec
	spec.classification == "pii"
	not spec.residency in {r | some r in list(config, "pii_regions")}
}

# PII stored in a pii region other than its home region (allowed only when a
# bundle widens pii_regions) moves personal data to another jurisdiction: two
# security reviewers confirm it.
findings.approval contains approval_by(
	"PII_OUTSIDE_HOME_REGION",
	sprintf("pii data outside its home region %q needs two security reviewers: region %q is allowed for pii but is not its home", [config.pii_home_region, spec.residency]),
	"spec.residency",
	"security-reviewer",
	2,
) if {
	changes_spec
	spec.classification == "pii"
	spec.residency in {r | some r in list(config, "pii_regions")}
	spec.residency != config.pii_home_region
}

# The target cluster must serve the requested region (a guard against a
# wrong catalog lookup placing data in another jurisdiction).
findings.deny contains violation(
	"CLUSTER_REGION_MISMATCH",
	sprintf("cluster %q is in region %q but the loop's residency is %q; this is a catalog or loopgate bug, please report it", [input.cluster.name, input.cluster.region, spec.residency]),
	"spec.residency",
) if {
	changes_spec
	spec.residency in regions
	input.cluster.region != spec.residency
}
