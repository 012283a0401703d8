# @summary Turns a Debian 12 machine into an openshift-node host.
#
# Adds the apt source the node's packages are published in, installs the node and the
# cartridges asked for, writes /etc/openshift/node.conf and the MCollective server.cfg the
# daemon's agent reads, and runs the daemon and the gears' boot unit.
#
# @param apt_url
#   The apt repository (as `packaging/publish` makes it), e.g. http://repo.example.com:8080/.
#   Undef: the packages come from the sources the machine already has.
# @param apt_key
#   The repository's ASCII-armored public signing key (its text).
# @param apt_suite
# @param apt_component
# @param public_hostname
#   The node's public DNS name, reported to the broker.
# @param public_ip
# @param cloud_domain
#   The DNS suffix of the applications' host names.
# @param broker_host
#   The broker's host for REST calls.
# @param cartridges
#   The shipped cartridges to install (openshift-node-cartridge-<name>).
# @param mcollective_brokers
#   The ActiveMQ brokers of the MCollective pool, in order; empty: the agent answers on its
#   local socket only (no server.cfg is written).
# @param mcollective_psk
#   The pre-shared key of MCollective's psk security provider (the broker's plugin.psk).
# @param mcollective_identity
#   The node's MCollective identity (default: its fqdn).
# @param settings
#   Further node.conf keys (see `openshift-node config-sample`), e.g. { 'GEAR_MAX_UID' => '9999' }.
# @param manage_apache
#   Make the system Apache the node's frontend (modules, routing rules, maps, a default virtual
#   host in place of Debian's 000-default).
# @param manage_service
#   Enable and run openshift-node, openshift-gears and apache2; false on a machine without systemd.
# @param package_ensure
class openshift_node (
  Optional[Pattern[/\Ahttps?:\/\/[^\s"]+\z/]] $apt_url = undef,
  Optional[String[1]] $apt_key = undef,
  Pattern[/\A[a-z0-9.-]+\z/] $apt_suite = 'stable',
  Pattern[/\A[a-z0-9.-]+\z/] $apt_component = 'main',
  Openshift_node::Confvalue $public_hostname = $facts['networking']['fqdn'],
  Openshift_node::Confvalue $public_ip = $facts['networking']['ip'],
  Openshift_node::Confvalue $cloud_domain = 'example.com',
  Openshift_node::Confvalue $broker_host = 'localhost',
  Array[Openshift_node::Cartridge] $cartridges = ['python', 'diy', 'cron'],
  Array[Openshift_node::Broker] $mcollective_brokers = [],
  Optional[Pattern[/\A[^\s]+\z/]] $mcollective_psk = undef,
  Pattern[/\A[A-Za-z0-9._-]+\z/] $mcollective_identity = $facts['networking']['fqdn'],
  Hash[Openshift_node::Confkey, Openshift_node::Confvalue] $settings = {},
  Boolean $manage_apache = true,
  Boolean $manage_service = true,
  Enum['installed', 'latest'] $package_ensure = 'installed',
) {
  if !empty($mcollective_brokers) and $mcollective_psk == undef {
    fail('openshift_node: mcollective_brokers needs mcollective_psk (the broker\'s plugin.psk)')
  }
  if $apt_url != undef and $apt_key == undef {
    fail('openshift_node: apt_url needs apt_key (the repository\'s public signing key)')
  }

  contain openshift_node::repo
  contain openshift_node::install
  contain openshift_node::config
  contain openshift_node::service

  Class['openshift_node::repo']
  -> Class['openshift_node::install']
  -> Class['openshift_node::config']
  ~> Class['openshift_node::service']

  if $manage_apache {
    contain openshift_node::apache
    Class['openshift_node::config'] -> Class['openshift_node::apache'] ~> Class['openshift_node::service']
  }
}
