# A shipped cartridge, installed as the package openshift-node-cartridge-<name>.
type Openshift_node::Cartridge = Pattern[/\A[a-z0-9][a-z0-9-]*\z/]
