{
  description = "PersonaPlex voice stack: development shell for the Pants monorepo";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";
  };

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.python311 # the services and their tests
            pkgs.python39 # runs Pants 2.17 itself (wheels exist for CPython 3.7-3.9 only)
            pkgs.docker-client
            pkgs.docker-compose # checks the compose file `orchestrator publish` writes
            pkgs.libopus
            pkgs.espeak-ng
            pkgs.sox
            pkgs.git
            pkgs.cacert
          ]
          # nixpkgs builds Chromium for Linux only; on macOS the tests use an installed Chrome
          # through CHROMIUM_PATH.
          ++ pkgs.lib.optionals pkgs.stdenv.isLinux [ pkgs.chromium pkgs.debootstrap ];

          shellHook = ''
            export PANTS_LAUNCHER_PYTHON="${pkgs.python39}/bin/python3.9"
            export SSL_CERT_FILE="''${SSL_CERT_FILE:-${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt}"
            # sphn and the model code load libopus at run time.
            export LD_LIBRARY_PATH="${pkgs.libopus}/lib''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
          '' + pkgs.lib.optionalString pkgs.stdenv.isLinux ''
            export CHROMIUM_PATH="''${CHROMIUM_PATH:-${pkgs.chromium}/bin/chromium}"
          '';
        };
      });
    };
}
