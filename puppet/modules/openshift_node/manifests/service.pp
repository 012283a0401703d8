# @summary The daemon, and the unit that starts the gears at boot.
# @api private
class openshift_node::service {
  if $openshift_node::manage_service {
    service { 'openshift-node':
      ensure => running,
      enable => true,
    }
    if $openshift_node::manage_apache {
      service { 'apache2':
        ensure => running,
        enable => true,
      }
    }
    service { 'openshift-gears':
      enable  => true,
      require => Service['openshift-node'],
    }
  }
}
