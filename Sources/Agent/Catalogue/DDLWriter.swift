/// Writes a catalogue as an MCollective DDL file (Ruby syntax), the file `mco` clients need in
/// `<libdir>/mcollective/agent/<agent>.ddl` to validate and display requests.
public enum DDLWriter {
    public static func ddl(_ catalogue: AgentCatalogue) -> String {
        var text = """
            metadata    :name        => \(quote(catalogue.name)),
                        :description => \(quote(catalogue.description)),
                        :author      => \(quote(catalogue.author)),
                        :license     => \(quote(catalogue.license)),
                        :version     => \(quote(catalogue.version)),
                        :url         => \(quote(catalogue.url)),
                        :timeout     => \(catalogue.timeout)

            """
        for action in catalogue.actions {
            text += "\naction \(quote(action.name)), :description => \(quote(action.description)) do\n    display :always\n"
            for input in action.inputs {
                text += "\n    input :\(input.name),\n"
                text += "          :prompt      => \(quote(input.prompt)),\n"
                text += "          :description => \(quote(input.description)),\n"
                switch input.kind {
                case let .string(validation, maxLength):
                    text += "          :type        => :string,\n"
                    text += "          :validation  => \(quote(validation)),\n"
                    text += "          :maxlength   => \(maxLength),\n"
                case .list(let values):
                    text += "          :type        => :list,\n"
                    text += "          :list        => [\(values.map(quote).joined(separator: ", "))],\n"
                case .integer: text += "          :type        => :integer,\n"
                case .number: text += "          :type        => :number,\n"
                case .float: text += "          :type        => :float,\n"
                case .boolean: text += "          :type        => :boolean,\n"
                case .any: text += "          :type        => :any,\n"
                }
                text += "          :optional    => \(input.optional)\n"
            }
            for output in action.outputs {
                text += "\n    output :\(output.name),\n"
                text += "           :description => \(quote(output.description)),\n"
                text += "           :display_as  => \(quote(output.displayAs))\n"
            }
            text += "end\n"
        }
        return text
    }

    /// A single-quoted Ruby string: only `\` and `'` need escaping.
    static func quote(_ s: String) -> String {
        var quoted = "'"
        for character in s {
            if character == "\\" || character == "'" { quoted.append("\\") }
            quoted.append(character)
        }
        return quoted + "'"
    }

    /// The `any` validator plugin MCollective 2.2 shipped and 2.3+ dropped: clients (and Ruby
    /// servers) need it to send `cartridge_do` args and `get_facts` facts at all.
    public static let anyValidatorRuby = """
        module MCollective
          module Validator
            # Accepts every value: the inputs of type :any (Hashes, Arrays) are checked by the agent.
            class AnyValidator
              def self.validate(validator)
                true
              end
            end
          end
        end

        """

    public static let anyValidatorDDL = """
        metadata    :name        => "any",
                    :description => "Accepts any value (inputs of type :any)",
                    :author      => "openshift-node",
                    :license     => "ASL 2.0",
                    :version     => "1.0",
                    :url         => "https://github.com/openshift/origin-server",
                    :timeout     => 1

        usage <<-END_OF_USAGE
        Accepts any value; the agent validates it.
        END_OF_USAGE

        """
}
