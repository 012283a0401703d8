# @summary The node's package and the cartridges' packages.
# @api private
class openshift_node::install {
  $packages = ['openshift-node'] + $openshift_node::cartridges.map |$name| { "openshift-node-cartridge-${name}" }
  package { $packages:
    ensure          => $openshift_node::package_ensure,
    # node.conf is this module's: keep it across upgrades instead of asking.
    install_options => ['-o', 'Dpkg::Options::=--force-confold'],
  }
}
